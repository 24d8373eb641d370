"""One virtual machine: the Python face of the C core, memory, CPU setup, loaders,
devices, snapshots and the Machine that ties them together. No asyncio, no Textual."""
