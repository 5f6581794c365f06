"""The read layer: analytics (scores, pass@k, comparisons, usage) and the HTML report."""
