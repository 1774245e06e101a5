from django import forms

from notifications.models import Preferences


class PreferencesForm(forms.ModelForm):
    """The optional emails; receipts and account mail are always sent."""

    class Meta:
        model = Preferences
        fields = ["generation_updates", "balance_reminders"]
