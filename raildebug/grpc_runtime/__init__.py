"""gRPC plumbing shared by the three servers and their clients: server lifecycle,
error mapping, interceptors and channel options. Business logic never lives here."""
