"""An example consumer: run a pipeline with every new image of alice's ``samtools`` container.

Copy it into the DAGs folder and change the Asset and the pipeline. ``container_build`` with
``workspace=alice, name=samtools`` adds an event to the Asset below; Airflow then runs this DAG,
which launches the pipeline on Seqera with ``process.container`` set to the image just built.
"""

from __future__ import annotations

from airflow.sdk import DAG, Asset, task

from hatchway.domain.wave import asset_uri

IMAGE = asset_uri("alice", "samtools")

with DAG(dag_id="pipeline_on_new_image", schedule=[Asset(uri=IMAGE, name=IMAGE)], catchup=False,
         tags=["hatchway", "containers", "example"]):

    @task(retries=2)
    def launch(triggering_asset_events=None) -> dict:
        from hatchway.containers.consumers import latest_image, launch_with_image

        image = latest_image(triggering_asset_events, IMAGE)["image"]
        return launch_with_image(image, run_prefix="samtools-check", pipeline="https://github.com/nf-core/demo",
                                 revision="1.0.2", params={"input": "s3://alice-data/samplesheet.csv"},
                                 work_dir="s3://alice-work/samtools-check")

    launch()
