// A form marked data-submit-once sends one request: a second click while the first is on its
// way does nothing, and its buttons show as busy. The server's one-time key is the guarantee;
// this only spares the second request.
document.addEventListener("submit", (event) => {
  const form = event.target;
  if (!(form instanceof HTMLFormElement) || !form.hasAttribute("data-submit-once")) return;
  if (form.dataset.submitting) {
    event.preventDefault();
    return;
  }
  form.dataset.submitting = "1";
  // Disabled after the browser has read the form, so the clicked button's value still goes.
  setTimeout(() => {
    for (const button of form.querySelectorAll("button[type=submit]:not([disabled])")) {
      button.disabled = true;
      button.dataset.submitOnce = "busy";
      button.setAttribute("aria-busy", "true");
    }
  }, 0);
});

// A page restored by Back keeps its state: let that form be used again (the same key still
// finds the first result on the server).
window.addEventListener("pageshow", (event) => {
  if (!event.persisted) return;
  for (const form of document.querySelectorAll("form[data-submit-once]")) {
    delete form.dataset.submitting;
    for (const button of form.querySelectorAll("button[data-submit-once]")) {
      button.disabled = false;
      button.removeAttribute("aria-busy");
      delete button.dataset.submitOnce;
    }
  }
});
