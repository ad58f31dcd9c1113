# Hatchway on the official Airflow image, with the pinned lock installed.
FROM apache/airflow:3.3.2-python3.11
COPY --chown=airflow:root requirements.txt /opt/hatchway/requirements.txt
RUN pip install --no-cache-dir -r /opt/hatchway/requirements.txt
COPY --chown=airflow:root dags/ /opt/airflow/dags/
COPY --chown=airflow:root plugins/ /opt/airflow/plugins/
COPY --chown=airflow:root include/ /opt/airflow/include/
ENV PYTHONPATH=/opt/airflow/plugins
