"""Local stand-ins for the OCI services streamcache uses, so the whole topology runs on one machine.

- :mod:`.broker`: OCI Streaming -> the Tansu Kafka-protocol broker.
"""
