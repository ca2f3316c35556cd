"""CI/CD variables kept outside the repository: variables files and a GitLab server's settings."""
