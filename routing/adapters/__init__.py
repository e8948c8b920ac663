"""Adapters to systems outside this process: one interface each, an HTTP implementation for
production and a stand-in whose name says it is local."""
