"""Real programs for tests and the demo, fetched once into the cache: Apache Kafka from Maven jars, and Debian's
node_exporter, Alertmanager and Prometheus."""

from perfwatch.tooling.local import LocalKafka, SaslUser, default_data_dir

__all__ = ["LocalKafka", "SaslUser", "default_data_dir"]
