"""The Simulation Service: Umbra's world models (sim/) over HTTP.

- `orbitstate.py`: the stateless orbital state (`POST /v1/state`, compatible
  with the reference agent's `--sim-url`): elements or a TLE and a time ->
  position, velocity, eclipse, orbit fraction.
- `sessions.py`: simulation sessions (one satellite, or a fleet) stepped
  through time and kept in the service's SQLite database (`db.py`), so a
  restarted service resumes them where they stood.
- `links.py`: the ISL link graph of a fleet at one time.
- `schemas.py`: the request bodies (pydantic; they also give the OpenAPI
  document its schemas); `app.py`: the FastAPI app; `server.py`: serving it.

`umbra sim serve` runs it (docs/simservice.md).
"""
