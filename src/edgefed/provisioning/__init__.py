"""Provisioning: Ansible inventory and playbook generation for inventory hosts."""
