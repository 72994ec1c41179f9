"""HTTP ingress: providers post mail to /inbound/<token> (services/http_ingress.py)."""
