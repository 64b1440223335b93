"""The deployment files agree with the code they deploy (see manifests.py)."""
