"""Owner and cost labels of a job's buckets: who a job is for, and what it is charged to.

GCS labels allow only lowercase letters, digits, ``_`` and ``-``, at most 63 characters
(keys must start with a letter); S3 tags allow far more. :func:`gcs_label_value` is the one
rule that turns an identity or a cost centre into a label value; S3 tags carry them as they
are.

Who owns an INTERVENE job: the request names no user, but the Globus guest collection
folder it comes from is the user's (``dir_path_on_guest_collection`` is
``<user e-mail>/<sample set folder>``). That e-mail is the owner identity; the sample set
folder is a name, not an identity, and is never used as the owner. A request whose folder
does not start with an e-mail address is labelled :data:`UNKNOWN_OWNER`, so it shows up in a
cost report instead of vanishing.
"""

from __future__ import annotations

import re

from hatchway.domain.jobs import JobRequest

GCS_LABEL_MAX = 63
UNKNOWN_OWNER = "unknown"
_NOT_LABEL = re.compile(r"[^a-z0-9_-]")
_EMAIL = re.compile(r"^[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+$")


def gcs_label_value(value: str) -> str:
    """``value`` as a GCS label value: lowercased, other characters ``_``, cut to 63.

    ``alice@example.org`` -> ``alice_example_org``.
    """
    return _NOT_LABEL.sub("_", value.lower())[:GCS_LABEL_MAX]


def job_owner(request: JobRequest) -> str:
    """The owner identity of a job (lowercased e-mail), or :data:`UNKNOWN_OWNER`."""
    first = request.globus_details.dir_path_on_guest_collection.split("/", 1)[0]
    return first.lower() if _EMAIL.match(first) else UNKNOWN_OWNER
