"""The recorder stage: a playable clip (WebM) per packet, with pre- and post-roll."""
