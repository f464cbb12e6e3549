"""Small pieces every service shares (configuration files); importable by an edge-only install."""
