"""An emulated AWS account on this machine: a moto server on loopback, and the EC2 twin behind it."""
