# The image of the nextflow-job chart's transfer init container (images.transfer in
# include/charts/nextflow-job/values.yaml): `python -m hatchway.transfer` and only what it
# needs. Build from the repository root:
#   docker build -f include/docker/transfer.Dockerfile -t ghcr.io/hatchway/hatchway-transfer:0.1.0 .
FROM python:3.11-slim

# The transfer's own dependencies, at the versions of requirements.txt (tests check they agree).
RUN pip install --no-cache-dir \
        crypt4gh==1.8.6 \
        boto3==1.43.117 \
        google-cloud-storage==3.17.1 \
        requests==2.34.2 \
        pydantic==2.14.3

# Only the transfer and the domain models it validates requests with; no Airflow.
COPY plugins/hatchway/transfer/ /opt/hatchway/hatchway/transfer/
COPY plugins/hatchway/domain/__init__.py plugins/hatchway/domain/jobs.py plugins/hatchway/domain/names.py \
     plugins/hatchway/domain/name_forms.py \
     plugins/hatchway/domain/wave.py plugins/hatchway/domain/wave_names.py \
     /opt/hatchway/hatchway/domain/
ENV PYTHONPATH=/opt/hatchway PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1

# The chart's pod runs as 1000:1000 with a read-only root filesystem: nothing is written here.
USER 1000:1000
ENTRYPOINT ["python", "-m", "hatchway.transfer"]
