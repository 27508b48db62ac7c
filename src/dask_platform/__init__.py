"""dask-platform: Dask on AWS for Earth-science teams, with keyless S3 access for workers.

Importing this package (or any module in it) creates no resource and starts no process.
"""

__version__ = "0.1.0"
