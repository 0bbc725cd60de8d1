"""``clbench report``: paper-style leaderboards, published numbers side by side, figures, a static HTML page.

Flow (one way): ``collect`` reads the run store -> ``summary`` computes metrics per run (via ``clbench.metrics``)
and mean ± std over seeds -> ``tables`` lays them out in the literature's shapes (``published`` adds the
literature's rows) -> ``render`` (md / LaTeX / CSV), ``figures`` (matplotlib) and ``html`` write them;
``cli`` is the subcommand.
"""
