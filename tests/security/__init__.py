"""Security suite: auth, tenant isolation, safe defaults, hostile input, leaks, audit."""
