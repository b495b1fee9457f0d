"""The recommendation service (Flask + gunicorn), ranking strategies and the offline evaluation."""
