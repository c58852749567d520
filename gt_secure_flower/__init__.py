"""Entry points of the Flower app (FAB): only these modules travel in the FAB.

Every node (SuperLink host and each organization's SuperNode) installs ``gt-secure`` itself;
the FAB then imports it from the node's environment, so the shipped base models, protocol
specs and translator come from the installed package, never from the FAB.
"""
