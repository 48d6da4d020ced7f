"""Local stand-ins for the OCI services streamcache uses, so the whole topology runs on one machine.

- :mod:`.broker`: OCI Streaming -> the Tansu Kafka-protocol broker; :mod:`.kafka_front` (with
  :mod:`.kafka_proxy`, :mod:`.kafka_sasl`, :mod:`.kafka_tls`): OCI Streaming's front end before it
  (TLS, SASL, latency, recycled connections, a read budget).
- :mod:`.fn_runner` and :mod:`.fn_protocol`: the Fn agent -> real ``fdk`` processes on unix sockets,
  invoked with Fn's HTTP protocol.
- :mod:`.gateway` (with :mod:`.pool`): OCI API Gateway -> a local HTTP server turning requests into Fn
  invokes over a pool of instances; :mod:`.invoke_endpoint`: the OCI Functions invoke API.
- :mod:`.object_storage`: OCI Object Storage -> an in-memory server the real ``oci`` SDK signs against.
- :mod:`.resource_principal`: what OCI Functions gives a function to sign with, for the local instances.
- :mod:`.dev` (with :mod:`.lifecycle`, :mod:`.data_dir`, :mod:`.stack_info`): ``streamcache dev``, the
  whole topology with one command, playing OCI's part around it (schedules, health checks, idle
  reclaim, Object Storage events for ``imports/``, restarts that keep the data);
  :mod:`.dev_command` registers the command with the ``streamcache`` CLI.

The product never imports this package (``make check``); it imports the product.
"""
