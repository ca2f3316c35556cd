"""Talking to GitLab servers: one client for the REST and runner APIs."""
