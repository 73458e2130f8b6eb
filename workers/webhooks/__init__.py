"""Webhooks for finished jobs: URL safety, Standard Webhooks signing, delivery with retries."""
