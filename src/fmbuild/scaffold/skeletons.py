"""The section skeleton of each kind of note, from WRITING.md. Guidance sits in HTML comments,
which Obsidian's reading view, the site and the Editions all leave out."""

from __future__ import annotations

KINDS = ("technique", "pattern", "anti-pattern", "playbook", "reference")

SECTIONS: dict[str, list[tuple[str, str]]] = {
    "technique": [
        ("What it is", "Two or three sentences: what the attack is and where it sits in the ML lifecycle."),
        ("How it works", "The mechanism, with the smallest code excerpt that shows it."),
        ("In the lab", ("What {module} does and what it measured. Cite numbers from its record, never by hand: "
                        "write evidence:metric_name between double braces. Show log lines the same way (log:EVENT between "
                        "double braces, alone on its line) and a plot by embedding records/<module name>/<plot>.png.")),
        ("What broke and why", "The failure an operator would see, and how it shows up in telemetry."),
        ("Detection and mitigation", ("Link the patterns that mitigate it and the anti-patterns that enable it "
                                      "(the edges live on those notes).")),
        ("References", "MITRE ATLAS and OWASP IDs go in the frontmatter; link sources such as [[sources/bibliography]]."),
    ],
    "pattern": [
        ("Problem", "What goes wrong without this control, in operational terms."),
        ("The pattern", "The control itself, and where it sits in the pipeline."),
        ("Implementation", "The smallest excerpt that implements it."),
        ("Evidence", "What {module} shows: the attack's metric restored by the control. Cite numbers from the record."),
        ("Trade-offs and costs", "Latency, accuracy, operational burden, what it does not stop."),
        ("Edges", "The techniques it mitigates are listed under 'mitigates' in the frontmatter, each with its 'use' sentence."),
    ],
    "anti-pattern": [
        ("Problem", "The situation in which teams reach for this."),
        ("The anti-pattern", "What it is and why teams fall into it."),
        ("Implementation", "The smallest excerpt that shows it."),
        ("Evidence", "What {module} shows: the anti-pattern measured failing. Cite numbers from the record."),
        ("Trade-offs and costs", "Why it looks cheap, and what it costs when it fails."),
        ("Edges", "The techniques it enables are listed under 'enables' in the frontmatter, each with its 'use' sentence."),
    ],
    "playbook": [
        ("Scope and prerequisites", "What is in scope, what is not, and what the reader needs before starting."),
        ("Steps", "Numbered steps, each with commands that work against this repository's modules."),
        ("Techniques covered", "A table of the techniques this playbook covers, as wikilinks."),
        ("Controls applied", "A table of the patterns it applies, as wikilinks."),
        ("Deliverables", "What the reader has at the end."),
        ("How to know each step succeeded", "The signal, log line or metric that proves it."),
    ],
    "reference": [
        ("What this explains", "The question a security engineer brings here, in two or three sentences."),
        ("What was measured", ("What {module} (or the records it draws on) measured. Cite numbers from records, never by "
                               "hand: evidence:metric_name, or evidence:module/metric_name for another module's record, "
                               "between double braces.")),
        ("What it means in practice", "The decisions an operator makes differently because of it."),
        ("Where to go next", "The techniques, controls and playbooks that build on it, as wikilinks."),
    ],
}


def body(kind: str, title: str, module: str | None, tables: dict[str, list[str]] | None = None) -> str:
    """The note's body: an H1 title, then each section with its guidance as a comment.

    `tables` puts a table of wikilinks under a playbook's section (`Techniques covered`)."""
    lines = [f"# {title}", ""]
    for heading, guidance in SECTIONS[kind]:
        lines += [f"## {heading}", "", f"<!-- {guidance.format(module=module or 'the evidence module')} -->", ""]
        links = (tables or {}).get(heading)
        if links:
            column = "Technique" if heading == "Techniques covered" else "Control"
            lines += [f"| {column} | Why |", "| --- | --- |"]
            lines += [f"| [[{link}]] | <!-- why it matters here --> |" for link in links]
            lines.append("")
    return "\n".join(lines)
