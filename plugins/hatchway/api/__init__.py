"""The GA4GH WES front door of Hatchway: a FastAPI app served by Airflow's api-server."""
