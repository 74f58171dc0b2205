"""Experimental APIs, as Ray's `ray.experimental`: `tqdm_ray` (progress
bars in remote tasks and actors, drawn by the driver)."""
