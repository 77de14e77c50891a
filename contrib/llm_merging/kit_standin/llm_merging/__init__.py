# SPDX-License-Identifier: Apache-2.0
# Stand-in for the LLM-Merging starter kit's package (see merging/Merges.py).
