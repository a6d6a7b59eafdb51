"""The Git side: fetch the tracked branch into a bare clone and read files at a sha without a checkout
(source.py, auth.py), verify commit signatures (verifying.py), and watch a local repository for new
commits (watching.py)."""
