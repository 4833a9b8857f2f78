"""Example scenarios for `manage.py loadtest --scenario NAME`, written against this repository's
site (the app at /, the plain `/color/` view, the demo login): copy one to start your own."""
