"""Signing in and out, sign-up, and the user's own password and second factor."""

from flask import Blueprint

bp = Blueprint("auth", __name__)
