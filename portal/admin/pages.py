"""The admin areas; each import registers that area's routes on the admin blueprint."""
