# Hatchway on the official Airflow image: the hatchway-airflow provider wheel, installed against
# the pinned lock, and nothing else of the repository (no dev stack, simulators or tests).
#   docker build -t hatchway-airflow:0.1.0 .

# Stage 1: build the wheel from the package sources only.
FROM apache/airflow:3.3.2-python3.11 AS wheel
WORKDIR /src
COPY pyproject.toml README.md LICENSE CHANGELOG.md ./
COPY plugins/hatchway/ plugins/hatchway/
COPY dags/ dags/
COPY include/charts/ include/charts/
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /src/dist .

# Stage 2: the runtime image.
FROM apache/airflow:3.3.2-python3.11
COPY requirements.txt /opt/hatchway/requirements.txt
COPY --from=wheel /src/dist/ /opt/hatchway/dist/
# The lock as constraints: the wheel's own dependency ranges resolve to the tested versions.
RUN pip install --no-cache-dir -c /opt/hatchway/requirements.txt \
        "$(ls /opt/hatchway/dist/hatchway_airflow-*.whl)[celery]"
# The DAG files ship in the package; the default dags folder links to them.
RUN ln -s "$(python -c 'import hatchway; print(hatchway.dags_folder())')" /opt/airflow/dags/hatchway
