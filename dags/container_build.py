"""container_build: conda packages (or a base image to augment) -> an image built by Wave -> an Asset event."""

from __future__ import annotations

from airflow.sdk import DAG, AssetAlias, Param

from hatchway.dag_defaults import DEFAULT_ARGS, workspace_param
from hatchway.domain.wave_names import CHANNEL, DEFAULT_CHANNELS, IMAGE, MULTI_PLATFORM, NAME, PACKAGE, REPOSITORY, SINGLE_PLATFORMS
from hatchway.notifiers.notice import NoticeNotifier
from hatchway.operators.container import IMAGES_ALIAS, TASK_BUILD, BuildContainerOperator

with DAG(
    dag_id="container_build",
    schedule=None,
    catchup=False,
    max_active_runs=50,
    default_args=DEFAULT_ARGS,
    tags=["hatchway", "containers", "wave"],
    params={
        "workspace": workspace_param(),
        "name": Param("default", type="string", title="Image name", pattern=NAME.pattern,
                      description="the image's name in the workspace: its Asset is hatchway-container://<workspace>/<name>"),
        "packages": Param([], type="array", title="Conda packages", items={"type": "string", "pattern": PACKAGE.pattern},
                          description="name, name=version or name==version (e.g. samtools=1.19)"),
        "channels": Param(list(DEFAULT_CHANNELS), type="array", title="Channels",
                          items={"type": "string", "pattern": CHANNEL.pattern}, description="in priority order"),
        "base_image": Param(None, type=["null", "string"], title="Base image to augment", pattern=IMAGE.pattern),
        "platform": Param("linux/amd64", type="string", title="Platform", enum=[*SINGLE_PLATFORMS, MULTI_PLATFORM]),
        "format": Param("docker", type="string", title="Format", enum=["docker", "sif"],
                        description="sif (Singularity) needs freeze"),
        "freeze": Param(False, type="boolean", title="Freeze",
                        description="push the image to the build repository for good (no expiring token)"),
        "build_repository": Param(None, type=["null", "string"], title="Target repository", pattern=REPOSITORY.pattern,
                                  description="where a frozen image is pushed (needed with freeze)"),
        "scan_mode": Param(None, type=["null", "string"], title="Security scan", enum=[None, "none", "async", "required"]),
    },
    doc_md="""
### Build a container on Seqera Wave
`build_container` checks the request (package specs, platform, format; freeze needs a target
repository, Singularity needs freeze) before any call, reuses the workspace's last good image
of the same packages, channels and platform without calling Wave, and otherwise asks Wave
and waits in the triggerer (one status call per build per interval). A success updates the
Asset `hatchway-container://<workspace>/<name>` (its event's extra holds the image): a DAG
scheduled on that Asset runs with each new image. A failure (also Wave's cached failure of
the same image) fails the run with Wave's reason and the last lines of the build log. The
workspace hears of both as its notification preference says (Variable
`hatchway_notify_config`). Settings: Variable `hatchway_container_config` (README).
""",
) as dag:
    built = NoticeNotifier("hatchway.notifiers.notices.container_build_notice")
    BuildContainerOperator(task_id=TASK_BUILD, source="build", asset_alias=IMAGES_ALIAS,
                           outlets=[AssetAlias(IMAGES_ALIAS)], on_success_callback=built, on_failure_callback=built)
