"""Transfer Crypt4GH-encrypted inputs into the work bucket, decrypting on the fly.

The init container of the ``nextflow-job`` chart runs it::

    python -m hatchway.transfer --config /etc/hatchway/transfer.json

or, every option on the command line::

    python -m hatchway.transfer \\
        --source-url https://g-1234.data.globus.org --source-dir user@example.org/set-1 \\
        --file hapnest.pgen.c4gh=278705850 --file hapnest.psam.c4gh=8517 \\
        --destination gs://ns-intp1-work/data \\
        --key-handler http --key-handler-url https://keys.example.org/key-handler \\
        --secret-id 81d5c400-21b4-4e88-8208-8d64c9920283 --secret-id-version 1

For each ``<name>.c4gh`` it streams the file from the source (HTTPS, ``s3://`` or ``gs://``),
decrypts it segment by segment with the private key fetched from the key handler (an HTTP
service or AWS Secrets Manager), and uploads the plaintext as ``<destination>/<name>`` (a GCS
resumable upload or an S3 multipart upload). Plaintext exists only in memory, one chunk at a
time: never in a local or temporary file. The encrypted byte count must equal the request's
``size``; on a mismatch, a wrong key or a damaged file the command fails and the file's
object is removed. Credentials come from the environment (``HATCHWAY_KEY_HANDLER_TOKEN``,
``HATCHWAY_KEY_PASSPHRASE``, ``HATCHWAY_SOURCE_TOKEN``) and are never logged, nor is the key.

Exit status: 0 all files transferred; 1 a file failed (message on stderr); 2 bad arguments
or configuration. ``python -m hatchway.transfer --help`` lists every option.
"""
