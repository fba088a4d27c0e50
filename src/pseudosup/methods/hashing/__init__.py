"""Binary hashing methods. Each registers a class with fit / encode / save / load."""
