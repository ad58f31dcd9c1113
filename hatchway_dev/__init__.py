"""The dev stack: local endpoints (moto, GCS emulator, Kafka mock cluster, the simulators), Airflow
started by hand, the REST client and the demo. For the repository only: nothing of the
production package imports it, and the wheel does not carry it."""
