"""The user's own account: password reset by e-mail, and the /account settings page."""
