"""Survey: can people tell generated faces from real ones? Build a real-vs-fake quiz from a trial's
fakes, serve it and store the answers, simulate participants for the demo, and analyse the answers
(fool rate and real-image error rate apart, intervals that respect one person's answers cling
together), as notebook 04 shows.

Start reading at `page.py` (building the quiz), then `analysis.py` (`analyse()`, what notebook 04
calls).

- page.py: pick the quiz's images with a seed, write a self-contained page and its key.
- folder.py: a built survey folder as the server needs it (images, ids, participant texts).
- server.py: `maskcycle survey serve`: the quiz served, every answer stored; db.py: its SQLite store.
- load.py: a bounded load test of a running server (127.0.0.1 only).
- simulate.py: a documented simulator of participants, for the demo and for checking the analysis.
- analysis.py: read the key and the answers, and analyse them.
- stats.py: proportions with intervals, tests, signal detection, cluster bootstrap, GEE.
- figures.py: the figures of notebook 04.
"""
