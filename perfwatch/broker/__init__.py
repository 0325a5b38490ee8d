"""A real Apache Kafka (KRaft) on loopback, from the broker jars on Maven Central."""

from perfwatch.broker.local import LocalKafka, SaslUser

__all__ = ["LocalKafka", "SaslUser"]
