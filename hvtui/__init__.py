"""hvtui: a Type-2 hypervisor on KVM that you drive from a terminal."""

__version__ = "0.1.0"
