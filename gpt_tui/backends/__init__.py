"""What the playground core talks to: a model behind one interface (`base.Backend`).

`local` runs the NumPy engine in this process (kv cache reuse, look inside, speculation);
`openai` talks to an OpenAI-compatible server over HTTP. The core never asks which one it has:
it asks `capabilities`, and shows what a backend cannot do instead of failing.
"""
