"""The report's sections, one module each; html.PAGE lists them in reading order.

Each module turns ReportData (or a part of it) into Markup through report/common.py and the
templates. Nothing here imports the page (html.py), and the data, facts and figure modules
one level up never import a section, so the report's imports form no cycle.
"""
