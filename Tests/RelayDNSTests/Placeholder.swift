// The DNS client's tests (against a local dnslib server) land here.
