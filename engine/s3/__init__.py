"""S3 access: a lean aiohttp data path and the minio SDK for the control plane."""
