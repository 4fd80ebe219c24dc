"""APEX data platform: PySpark + Delta Lake medallion pipeline (bronze/silver/gold).

No Django imports anywhere in this package: the jobs run on any Spark cluster
and hand the engine plain Delta tables (read there with ``deltalake``).
"""
