"""Hosting the components for every Pulumi language: the plugin's components, name, version and schema."""
