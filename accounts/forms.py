from django import forms


class DeleteAccountForm(forms.Form):
    """Deleting the account asks for the password again, whatever the session's age."""

    password = forms.CharField(
        label="Your password",
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "current-password"}),
    )
    confirm = forms.BooleanField(
        label="I understand my generations and media are deleted for good.",
        required=True,
    )
