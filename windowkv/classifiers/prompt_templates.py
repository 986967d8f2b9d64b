"""Instruction templates of the labelled prompt set (:mod:`windowkv.classifiers.prompt_set`).

Written for windowkv (Apache-2.0), except the entries marked ``longbench``/``ruler``/``windowkv``,
which are the prompt templates of LongBench (MIT), RULER (Apache-2.0) and windowkv's own needle
task, already shipped in :mod:`windowkv.eval`. Each family lists templates with a ``{doc}`` slot
(the document) and family slots (``{question}``, ``{n}``, ...); a leading ``[kind]`` names the kind
of document the template needs (default: any prose or code document). Instructions sit before the
document, after it, or both; some templates are terse, some chatty, some use no question mark, so
no single cue word marks a label. The last ``HELD_OUT`` templates of every family are never
trained on: they make the test split.
"""

from __future__ import annotations

#: templates per family kept for the test split (the last ones of each list)
HELD_OUT = 3
#: hand-written templates (before the held-out ones) and requests (the last ones) per family kept for ``val``
VAL_TEMPLATES = 2

TEMPLATES: dict[str, list[str]] = {
    "single_doc_qa": [
        "Read the following text and answer briefly.\n\n{doc}\n\nNow, answer the following question based on the "
        "above text, only give me the answer and do not output any other words.\n\nQuestion: {question}\nAnswer:",
        "You are given a {doc_kind} and a question. Answer the question as concisely as you can.\n\n"
        "{doc_title}: {doc}\n\nQuestion: {question}\nAnswer:",
        "{doc}\n\nQ: {question}\nA:",
        "Question: {question}\n\nUse the {doc_kind} below to answer it.\n\n{doc}",
        "Based on this {doc_kind}, {question_lower}\n\n{doc}",
        "{doc}\n\n{question}",
        "Here is a {doc_kind}.\n---\n{doc}\n---\nI need one fact from it: {question_lower} Reply with just the fact.",
        "<document>\n{doc}\n</document>\nUsing only the document above, respond to: {question}",
        "Context:\n{doc}\n\nGiven the context, give a short reply. {question}\nShort reply:",
        "Look through the {doc_kind} and tell me this: {question_lower}\n\n{doc}\n\nKeep the reply under ten words.",
        "### Instruction\nRespond to the query using the passage.\n\n### Passage\n{doc}\n\n### Query\n{question}\n\n### Response\n",
        # held out
        "Please consult the {doc_kind} that follows; afterwards I will ask something specific about it.\n\n{doc}\n\n"
        "My query: {question}",
        "{doc}\n\nAccording to the text, {question_lower} State it in a few words.",
        "I pasted a {doc_kind} below. Somewhere in it there is the information I want. {question}\n\n{doc}",
    ],
    "multi_doc_qa": [
        "Answer the question based on the given passages. Only give me the answer and do not output any other words."
        "\n\nThe following are given passages.\n{doc}\n\nAnswer the question based on the given passages. Only give "
        "me the answer and do not output any other words.\n\nQuestion: {question}\nAnswer:",
        "{doc}\n\nUsing the documents above, answer: {question}",
        "Several articles are given below. {question}\n\n{doc}",
        "Documents:\n{doc}\n\nQuestion (requires combining the documents): {question}\nAnswer:",
        "Search results:\n{doc}\n\nWith the search results, {question_lower}",
        "Read these sources carefully.\n\n{doc}\n\n{question} Cite the passage number.",
        "Below are numbered passages from different sources.\n{doc}\nTask: give the short answer to \"{question}\"",
        "{doc}\n\nTwo or more of the passages above are needed here. {question}",
        "You will see a collection of texts, then a query.\n\n{doc}\n\nQuery: {question}\nReturn the entity only.",
        "Sources:\n{doc}\n\nQ: {question}\nA (one phrase):",
        "{question}\n\nThe relevant information is spread over the following passages:\n{doc}",
        # held out
        "I gathered some notes from various places.\n{doc}\nCross-reference them to settle this: {question}",
        "Given the excerpts below, work out the single correct response to the query at the end.\n\n{doc}\n\n"
        "Query -> {question}",
        "{doc}\n\nPiece together facts from these pages. {question_lower}",
    ],
    "retrieval": [
        "[needle]A special magic number is hidden within the following text. Make sure to memorize it. I will quiz you "
        "about the number afterwards.\n{doc}\nWhat is the special magic number for {key} mentioned in the provided "
        "text?",
        "[needle]Some special magic numbers are hidden within the following text. Make sure to memorize it. I will quiz you "
        "about the numbers afterwards.\n{doc}\nWhat are all the special magic numbers for {key} mentioned in the "
        "provided text?",
        "[abstract]Here are {n} paragraphs, along with an abstract. Please determine which paragraph the abstract is from.\n\n"
        "{doc}\n\nThe following is an abstract.\n\n{abstract}\n\nPlease enter the number of the paragraph that the "
        "abstract is from. The answer format must be like \"Paragraph 1\", \"Paragraph 2\", etc.\n\nThe answer is: ",
        "[kv]Extract the value corresponding to the specified key in the JSON object below.\n\n{doc}\n\nKey: \"{key}\"\n"
        "Corresponding value:",
        "[vt]Memorize and track the chain(s) of variable assignment hidden in the following text.\n\n{doc}\nQuestion: "
        "Find all variables that are assigned the value {value} in the text above.",
        "[needle]{doc}\n\nSomewhere above is a sentence giving the code for {key}. Return that code.",
        "[log]Locate the line mentioning {key} in the log below and copy its number.\n\n{doc}",
        "[passkey]There is one sentence in this text that does not belong: it states a pass key. Find the pass key.\n\n{doc}"
        "\n\nThe pass key is",
        "[records]Retrieve the entry for {key}.\n{doc}",
        "[abstract]{doc}\nWhich paragraph contains the following summary? {abstract}\nGive the paragraph number only.",
        "[records]Inside the records below, {key} is assigned a value. Report it.\n\n{doc}",
        # held out
        "[needle]{doc}\n\nScan the material above for the hidden token attached to {key} and repeat it exactly.",
        "[needle]Hidden in the following lines is one fact about {key}. Memorise everything, then return only the number "
        "linked to {key}.\n\n{doc}",
        "[abstract]Pinpoint the paragraph that this excerpt was taken from: {abstract}\n\n{doc}\n\nParagraph index:",
    ],
    "summarisation": [
        "You are given a {doc_kind}. Write a one-page summary of it.\n\n{doc_title}:\n{doc}\n\nNow, write a "
        "one-page summary of the {doc_kind}.\n\nSummary:",
        "You are given several news passages. Write a one-page summary of all news. \n\nNews:\n{doc}\n\nNow, write a "
        "one-page summary of all the news.\n\nSummary:",
        "You are given a meeting transcript and a query containing a question or instruction. Answer the query in "
        "one or more sentences.\n\nTranscript:\n{doc}\n\nNow, answer the query based on the above meeting transcript"
        " in one or more sentences.\n\nQuery: {summary_query}\nAnswer:",
        "{doc}\n\nTL;DR:",
        "Summarize the following {doc_kind} in {n} bullet points.\n\n{doc}",
        "{doc}\n\nWrite an abstract for the text above.",
        "Condense this {doc_kind} into a short paragraph for a busy reader.\n\n{doc}",
        "{doc}\n\nWhat are the main points of this {doc_kind}? Cover all of them briefly.",
        "Give me an overview of what the following {doc_kind} covers.\n---\n{doc}\n---",
        "### Instruction\nProduce a concise digest.\n\n### Input\n{doc}\n\n### Response\n",
        "{doc}\n\nIn a few sentences, describe what happens across the whole text.",
        # held out
        "Here is a long {doc_kind}. Boil it down to its gist so that someone who never reads it knows what it says."
        "\n\n{doc}",
        "{doc}\n\nRecap the discussion above: the themes raised, from start to end.",
        "Draft the executive brief of the {doc_kind} below (five lines at most).\n\n{doc}\n\nBrief:",
    ],
    "few_shot": [
        "[trec]Please determine the type of the question below. Here are some examples of questions.\n\n{doc}\n{query}",
        "[trivia]Answer the question based on the given passage. Only give me the answer and do not output any other words. "
        "The following are some examples.\n\n{doc}\n\n{query}",
        "[dialogue]Summarize the dialogue into a few short sentences. The following are some examples.\n\n{doc}\n\n{query}",
        "{doc}\n{query}",
        "Classify each text into one of the categories shown in the examples.\n\n{doc}\n{query}",
        "Learn the pattern from the labelled examples, then label the last one.\n\n{doc}\n{query}",
        "Examples:\n{doc}\n\nNow do the same for this input.\n{query}",
        "{doc}\n\nFollowing the format of the demonstrations above:\n{query}",
        "Here are demonstrations of the task.\n{doc}\nYour turn.\n{query}",
        "Map each input to its output as in these pairs.\n\n{doc}\n\n{query}",
        "Input/output pairs follow; complete the final pair.\n{doc}\n{query}",
        # held out
        "I will show you how I tag things a few times. Copy my tagging style for the final item.\n\n{doc}\n{query}",
        "{doc}\n\n(Same task as the samples above.)\n{query}",
        "Study the worked cases, infer the rule, and apply it.\n\n{doc}\n\n{query}",
    ],
    "code_completion": [
        "Please complete the code given below. \n{doc}Next line of code:\n",
        "Please complete the code given below. \n{doc}{tail}Next line of code:\n",
        "{doc}",
        "Continue this Python file.\n\n```python\n{doc}",
        "```python\n{doc}\n```\nWrite the next line.",
        "Complete the following function.\n\n{doc}",
        "{doc}\n# TODO: finish the implementation above",
        "You are a coding assistant. Predict the code that comes right after this snippet.\n\n{doc}",
        "# Repository context\n{doc}\n# Continue the last block:\n",
        "Fill in what follows:\n{doc}",
        "{doc}\n\nWhat line of code should come next? Output only code.",
        # held out
        "Autocomplete the source below; reply with the continuation and nothing else.\n\n{doc}",
        "Here is an unfinished module.\n\n{doc}\n\nCarry on writing it from where it stops.",
        "{doc}\n<cursor>",
    ],
    "counting": [
        "[duplicates]There are some paragraphs below sourced from Wikipedia. Some of them may be duplicates. Please carefully "
        "read these paragraphs and determine how many unique paragraphs there are after removing duplicates. In "
        "other words, how many non-repeating paragraphs are there in total?\n\n{doc}\n\nPlease enter the final count "
        "of unique paragraphs after removing duplicates. The output format should only contain the number, such as "
        "1, 2, 3, and so on.\n\nThe final answer is: ",
        "[words]Below is a numbered list of words. In these words, some appear more often than others. Memorize the ones "
        "that appear most often.\n{doc}\nQuestion: What are the {n} most common words in the above list?",
        "[coded]Read the following coded text and track the frequency of each coded word. Find the three most frequently "
        "appeared coded words. {doc}\nQuestion: Do not provide any explanation. Please ignore the dots '....'. What "
        "are the three most frequently appeared words in the above coded text?",
        "[text]{doc}\n\nHow many times does the word \"{word}\" occur in the text above?",
        "[passages]Count the paragraphs above that mention {key}.\n\n{doc}",
        "[passages]{doc}\n\nTally every distinct city named in these passages and give the total.",
        "[transcript]How many different people speak in this transcript?\n\n{doc}",
        "[text]{doc}\n\nList the {n} words used most frequently, most frequent first.",
        "[text]Go through all of the text and give the number of sentences that contain a number.\n\n{doc}",
        "[duplicates]{doc}\nNumber of unique passages:",
        "[words]Compute the frequency of each item in the list below and return the top {n}.\n{doc}",
        # held out
        "[duplicates]Some of the following entries repeat. Report how many distinct entries remain after deduplication.\n\n{doc}",
        "[text]{doc}\n\nAcross the entire document, which {n} terms recur the most often?",
        "[text]Give a histogram (word: count) of the five commonest words in this text.\n\n{doc}",
    ],
}

#: family -> the paper's binary label
FAMILY_LABELS: dict[str, str] = {
    "single_doc_qa": "qa",
    "multi_doc_qa": "qa",
    "retrieval": "qa",
    "summarisation": "other",
    "few_shot": "other",
    "code_completion": "other",
    "counting": "other",
}

#: short requests, combined with neutral openers/closers and layouts into more training phrasings
#: (written for windowkv); composed prompts go to train/val only, never to test
CORES: dict[str, list[str]] = {
    "single_doc_qa": [
        "{question}", "Answer this: {question}", "Question: {question}", "Find in the {doc_kind}: {question_lower}",
        "Use the {doc_kind} to respond. {question}", "Quick check on a detail - {question_lower}",
        "From the text, {question_lower}", "I want to know one thing. {question}", "Tell me, {question_lower}",
        "Reply with the exact detail: {question}", "Which line of the {doc_kind} settles this? {question}",
        "Q: {question}",
    ],
    "multi_doc_qa": [
        "Combine the passages to answer: {question}", "{question} (the answer needs more than one passage)",
        "Using all the documents, {question_lower}", "Question about the passages: {question}",
        "Link the relevant facts across sources. {question}", "Several passages are relevant. {question}",
        "Answer from the numbered passages: {question}", "Multi-hop question: {question}",
        "Consult the passages, then {question_lower}",
    ],
    "retrieval": [
        "[needle]What is the number for {key}?", "[needle]Return the value given for {key}.",
        "[needle]Find the hidden fact about {key} and quote its number.",
        "[needle]Somewhere in the text {key} comes with a number. Which number?",
        "[passkey]What is the pass key?", "[passkey]Recover the pass key from the noise.",
        "[kv]Look up \"{key}\" in the JSON.", "[kv]Give the value stored under {key}.", "[records]Look up {key}.",
        "[records]What value does {key} have?", "[log]Copy the register content for line {key}.",
        "[abstract]Which paragraph does this abstract describe? {abstract}",
        "[abstract]Match the abstract to its paragraph: {abstract}", "[vt]Which variables end up holding {value}?",
    ],
    "summarisation": [
        "Summarize the {doc_kind}.", "Write a summary.", "Give the gist.", "Sum up the main ideas of the {doc_kind}.",
        "Provide a brief synopsis.", "What is the {doc_kind} about, overall?",
        "Describe the content of the {doc_kind} in a paragraph.", "Highlight the key points.",
        "Create a short report of what was discussed.", "Paraphrase the whole {doc_kind} in a few lines.",
        "Write the headline and a two-sentence summary.", "Outline the {doc_kind}.",
    ],
    "few_shot": [
        "Label the last item like the examples.", "Follow the examples.", "Answer in the same style as the examples.",
        "Continue the pattern.", "Use the demonstrations to complete the final entry.", "Complete the last one.",
        "Classify the final input.", "Examples come first; do the last one yourself.",
    ],
    "code_completion": [
        "Complete the code.", "Finish this function.", "Write the rest of the file.",
        "Continue the code from where it stops.", "Predict the next line.", "Generate the next statement.",
        "What comes next in this program?", "Resume the code.", "Code completion:", "Complete the Python below.",
    ],
    "counting": [
        "[duplicates]How many unique paragraphs are there?", "[duplicates]Count the distinct passages.",
        "[duplicates]After removing repeats, how many paragraphs remain?", "[words]Which words appear most often?",
        "[words]Rank the {n} commonest words.", "[words]What are the most frequent items?",
        "[coded]Which coded words occur most frequently?", "[text]Count how often \"{word}\" is used.",
        "[text]What is the total number of sentences?", "[text]Which {n} words are used the most?",
        "[passages]How many passages mention {key}?", "[passages]Count the cities mentioned in all passages.",
        "[transcript]How many speakers take part?", "[transcript]Count the turns of each speaker.",
    ],
}
OPENERS = ("", "Read carefully.\n", "Here is some material.\n", "Below is a document.\n", "You will be given a text.\n",
           "Consider the following.\n", "### Input\n", "Context follows.\n")
CLOSERS = ("", " Be brief.", " Do not explain.", " Keep it short.", " Reply in English.")
LAYOUTS = ("{opener}{core}\n\n{doc}", "{opener}{doc}\n\n{core}{closer}", "{core}\n\n{doc}\n\n{core}{closer}",
           "{opener}\n{doc}\n{core}")
FEW_SHOT_LAYOUTS = ("{core}\n\n{doc}\n{query}", "{doc}\n{core}\n{query}", "{opener}{doc}\n\n{query}")

#: more training phrasings (written for windowkv, added after the first measurements): chat-style,
#: system-prompt style, Markdown and XML layouts, instructions split around the document. Train split only.
EXTRA_TEMPLATES: dict[str, list[str]] = {
    "single_doc_qa": [
        "System: you answer questions about documents.\nUser: {question}\n\n{doc}\nAssistant:",
        "## Source\n{doc}\n\n## Question\n{question}\n\n## Answer (short)\n",
        "Hi! Could you check something in this {doc_kind} for me? {question}\n\n{doc}\n\nThanks.",
        "{doc}\n\nThe reader wants a single detail from the passage above. {question}",
        "<context>{doc}</context>\n<question>{question}</question>\nAnswer in one phrase.",
        "Extract the answer to \"{question}\" from the {doc_kind} that follows.\n\n{doc}",
    ],
    "multi_doc_qa": [
        "System: answer using the retrieved passages.\nUser: {question}\n\n{doc}\nAssistant:",
        "## Retrieved documents\n{doc}\n\n## Question\n{question}\n",
        "{doc}\n\nNo single passage above answers this alone; link them. {question}",
        "<documents>\n{doc}\n</documents>\n<question>{question}</question>",
        "I found these snippets while researching. {question}\n\n{doc}\n\nOne short answer, please.",
        "Question: {question}\nEvidence is split across the passages below; reason over them.\n\n{doc}",
    ],
    "retrieval": [
        "[needle]System: find facts hidden in long text.\nUser: which number belongs to {key}?\n\n{doc}\nAssistant:",
        "[kv]## Data\n{doc}\n\n## Lookup\nReturn the value whose key is \"{key}\".",
        "[records]{doc}\n\nFrom the table above, fetch the row for {key} and output its value only.",
        "[passkey]A pass key is buried in the noise below. Dig it out and type it.\n\n{doc}",
        "[log]<log>\n{doc}\n</log>\nFind the entry for {key}; reply with its line number.",
        "[needle]Before the text starts: remember that I will ask about {key}.\n\n{doc}\n\nNow: what value was given for {key}?",
    ],
    "summarisation": [
        "System: you write summaries.\nUser: Please summarise this {doc_kind}.\n\n{doc}\nAssistant:",
        "## Document\n{doc}\n\n## Task\nWrite a short summary of the whole document.",
        "Hey, I have no time to read this {doc_kind}. What does it say, in short?\n\n{doc}",
        "<document>\n{doc}\n</document>\nSummarise the document above in a paragraph.",
        "{doc}\n\nExplain in three sentences what this {doc_kind} is about.",
        "Write meeting minutes (decisions and topics) for the transcript below.\n\n{doc}",
    ],
    "few_shot": [
        "[trec]System: label questions by answer type, as in the examples.\n\n{doc}\n{query}",
        "[topic]## Examples\n{doc}\n\n## Now you\n{query}",
        "[dialogue]{doc}\n\nSame format as above for the next dialogue.\n{query}",
        "[trivia]Below are solved examples. Answer the last one the same way.\n{doc}\n\n{query}",
        "<examples>\n{doc}\n</examples>\n{query}",
        "Few-shot prompt:\n{doc}\n{query}",
    ],
    "code_completion": [
        "System: you complete code.\nUser:\n{doc}",
        "## File\n```python\n{doc}",
        "Keep writing this program from the last line.\n\n{doc}",
        "<code>\n{doc}",
        "{doc}\n# continue here",
        "Can you write the next few lines of this script?\n\n{doc}",
    ],
    "counting": [
        "[duplicates]System: you count things in text.\nUser: how many distinct paragraphs are below?\n\n{doc}\nAssistant:",
        "[words]## List\n{doc}\n\n## Task\nWhich {n} entries occur most often? Give them in order.",
        "[passages]{doc}\n\nHow many of the passages above talk about {key}? Reply with a number.",
        "[text]Please count, over the whole text, how many sentences mention a city.\n\n{doc}",
        "[coded]{doc}\nAmong the coded words above, report the three with the highest counts.",
        "[transcript]{doc}\n\nTally the number of turns each speaker takes in this conversation.",
    ],
}
