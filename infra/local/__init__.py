"""Local stand-ins for the OCI services streamcache uses, so the whole topology runs on one machine.

- :mod:`.broker`: OCI Streaming -> the Tansu Kafka-protocol broker.
- :mod:`.fn_runner` and :mod:`.fn_protocol`: the Fn agent -> real ``fdk`` processes on unix sockets,
  invoked with Fn's HTTP protocol.
- :mod:`.gateway`: OCI API Gateway -> a local HTTP server turning requests into Fn invokes.
- :mod:`.dev`: ``streamcache dev``, the whole topology with one command.
"""
