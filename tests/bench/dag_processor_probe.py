"""Parse DAG files as Airflow 3's dag-processor does, and print how long each took.

Run by ``test_bench_parse.py`` (``make bench``) in a fresh process per measurement:
``python dag_processor_probe.py PLUGINS WARMUP FILE...``. This process plays the manager: it
has the dag-processor loaded, and before each file it pre-imports the ``airflow.*`` modules the
file names (``[dag_processor] parsing_pre_import_modules``, on by default), as
``DagFileProcessorProcess.start`` does. Each parse is a forked child that builds the
``BundleDagBag`` of the one file and serializes its DAGs, as ``processor._parse_file`` does;
whatever else the file imports (Hatchway's modules, providers it reaches) is imported in that
child again at every parse, since the child exits afterwards.

For each file: ``first`` = pre-import + the first child parse; ``again`` = the least of seven
more child parses (a re-parse: the manager keeps what it pre-imported). Times are CPU time
(``time.process_time``: the pre-import in this process, the parse in the child), so that what
else the machine runs does not count. The manager freezes its objects
(``gc.freeze``) before the first file, as the dag-processor's does. ``WARMUP`` is parsed
first and not reported, so that lazy imports of the manager itself count for nobody.
Prints one line ``RESULT=<json>``: ``{file: [first_s, again_s, dag_count]}``.
"""

from __future__ import annotations

import gc
import json
import os
import sys
import time

sys.path.insert(0, sys.argv[1])

import structlog  # noqa: E402

from airflow.dag_processing.dagbag import BundleDagBag  # noqa: E402
from airflow.dag_processing.processor import _pre_import_airflow_modules, _serialize_dags  # noqa: E402

log = structlog.get_logger()
REPARSES = 7


def parse_in_child(path: str) -> tuple[float, int]:
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: parse, serialize, report, exit
        os.close(read)
        started = time.process_time()  # the child's CPU time: what the parse costs, not who else ran
        bag = BundleDagBag(dag_folder=path, bundle_path=os.path.dirname(path), bundle_name="dags-folder",
                           load_op_links=False)
        serialized, errors = _serialize_dags(bag, log)
        took = time.process_time() - started
        os.write(write, json.dumps([took, len(serialized), {**bag.import_errors, **errors}]).encode())
        os._exit(0)
    os.close(write)
    data = b""
    while chunk := os.read(read, 65536):
        data += chunk
    os.close(read)
    os.waitpid(pid, 0)
    took, count, errors = json.loads(data)
    if errors:
        raise SystemExit(f"{path}: import errors {errors}")
    return took, count


def measure(path: str) -> list[float]:
    started = time.process_time()
    _pre_import_airflow_modules(path, log)
    pre = time.process_time() - started
    first, count = parse_in_child(path)
    again = min(parse_in_child(path)[0] for _ in range(REPARSES))
    return [pre + first, again, count]


def main() -> None:
    warmup, files = sys.argv[2], sys.argv[3:]
    # The manager freezes what it holds once it has started (DagFileProcessorManager.before_run,
    # "to prevent COW in forked process parsing dag file"): a collection in a child then skips
    # the manager's objects. Without it every child's collections walked them, ~3 ms of each
    # parse that the dag-processor does not pay.
    gc.freeze()
    measure(warmup)
    print("RESULT=" + json.dumps({path: measure(path) for path in files}))


if __name__ == "__main__":
    main()
