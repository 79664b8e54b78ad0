"""What the agent can do besides talk (issue 16): tools over HTTP and built-ins (one runner),
transfer, and the post-call webhook. Depends on campaigns (config) and aioptions (LLM types)."""
