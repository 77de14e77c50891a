# SPDX-License-Identifier: Apache-2.0
# Stand-in: the real kit imports its example methods here.
