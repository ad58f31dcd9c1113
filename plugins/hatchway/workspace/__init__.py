"""The workspace lifecycle on AWS: ensure, tear down, inventory and purge."""
